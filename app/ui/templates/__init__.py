"""The Templates page's views, one module each: the list (``template_list``), one template's
detail with its tabs (``template_detail``), the editor (``template_editor``), the admin's test send
and management (``template_actions``) and the WhatsApp tab (``template_whatsapp``); ``state``
holds the cached reads and what follows a change, ``display`` the shared drawing helpers."""
